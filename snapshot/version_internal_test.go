package snapshot

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seckill/seckill/domain"
)

// TestOtherFoldVersionIsRefused: a snapshot whose checksum holds but that an
// other version of the fold wrote does not verify.
func TestOtherFoldVersionIsRefused(t *testing.T) {
	t.Parallel()
	for _, h := range []Head{
		{Format: FormatVersion, FoldVersion: domain.FoldVersion + 1},
		{Format: FormatVersion + 1, FoldVersion: domain.FoldVersion},
		{Format: FormatVersion, FoldVersion: domain.FoldVersion}, // the control: verifies
	} {
		dir := t.TempDir()
		w, err := newWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "s.snap")
		h.Topic = "t"
		if err := w.finish(&h, path); err != nil {
			t.Fatal(err)
		}
		w.close(true)
		r, err := open(path)
		ok := h.Format == FormatVersion && h.FoldVersion == domain.FoldVersion
		switch {
		case ok && err != nil:
			t.Errorf("format %d fold %d: %v", h.Format, h.FoldVersion, err)
		case !ok && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "version")):
			t.Errorf("format %d fold %d: error %v, want ErrInvalid naming the version", h.Format, h.FoldVersion, err)
		}
		if r != nil {
			r.close()
		}
	}
}
