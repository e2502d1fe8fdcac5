package loadgen

import "slices"

// Merge adds up the results of runs that went on at the same time (several
// load generators, each against its own server): counts add up, the elapsed
// time is the longest, and percentiles are over every request of them all.
func Merge(rs ...Result) Result {
	out := Result{ByStatus: map[int]int{}, ByCode: map[string]int{}}
	for _, r := range rs {
		out.Sent += r.Sent
		out.Failed += r.Failed
		out.Elapsed = max(out.Elapsed, r.Elapsed)
		for k, v := range r.ByStatus {
			out.ByStatus[k] += v
		}
		for k, v := range r.ByCode {
			out.ByCode[k] += v
		}
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
		out.latencies = append(out.latencies, r.latencies...)
		out.Kept = append(out.Kept, r.Kept...)
	}
	slices.Sort(out.latencies)
	return out
}
