// Package forecast will hold prescale's load forecasters (Holt, Holt-Winters, seasonal-naive,
// robust linear), arriving with the predictive-scaling issue. Like policy/, it is pure: the
// standard library and gonum only, no I/O, no clock; `make check` enforces it.
package forecast
