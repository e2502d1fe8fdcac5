package commands

import "time"

// SoldOutFlag reports whether this node answers sale id sold_out from memory.
func (g *Gate) SoldOutFlag(id string) bool {
	sg := g.loadedGuard(id)
	return sg != nil && sg.soldOutUntil.Load() != 0
}

// BlockedHere reports whether this node's copy of the blacklist has user.
func (g *Gate) BlockedHere(user string) bool { return g.isBlocked(user) }

// VerifyToken checks a purchase token as Purchase does.
func (g *Gate) VerifyToken(token, sale, user string, now time.Time) bool {
	return g.tokens.verify(token, sale, user, now)
}
