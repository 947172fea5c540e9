package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's Prometheus collectors, on a registry of its own (no global state):
// two gateways in one process, as in tests, count apart.
type metrics struct {
	reg           *prometheus.Registry
	registrations *prometheus.CounterVec
	connects      *prometheus.CounterVec
	callbacks     *prometheus.CounterVec
	tokenSwaps    *prometheus.CounterVec
	forgets       *prometheus.CounterVec
	notifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_registrations_total",
			Help: "Installation registrations, by outcome (created, invalid, rate_limited, error).",
		}, []string{"outcome"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_connects_total",
			Help: "Connect requests (POST /v1/connect), by result (admitted, refused) and reason for a refusal.",
		}, []string{"result", "reason"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_callbacks_total",
			Help: "Provider callbacks (GET /v1/callback), by outcome (code, provider_error, state_invalid, bad_request, revoked).",
		}, []string{"outcome"}),
		tokenSwaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_token_swaps_total",
			Help: "Token swaps for confidential providers, by outcome (ok, provider_refused, provider_unreachable, provider_not_json, bad_request).",
		}, []string{"outcome"}),
		forgets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_user_forgets_total",
			Help: "DELETE /v1/users calls, by outcome (forgotten, unknown).",
		}, []string{"outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighthouse_notifications_total",
			Help: "Administrator notifications from the outbox, by outcome (sent, failed).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lighthouse_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	m.reg.MustRegister(m.registrations, m.connects, m.callbacks, m.tokenSwaps, m.forgets, m.notifications, m.latency,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	// Every outcome appears from the start (at 0), so a dashboard's rate() has a series to read.
	for _, o := range []string{"created", "invalid", "rate_limited", "error"} {
		m.registrations.WithLabelValues(o)
	}
	m.connects.WithLabelValues("admitted", "")
	for _, o := range []string{"sent", "failed"} {
		m.notifications.WithLabelValues(o)
	}
	return m
}

func (m *metrics) registration(outcome string)  { m.registrations.WithLabelValues(outcome).Inc() }
func (m *metrics) connectAdmitted()             { m.connects.WithLabelValues("admitted", "").Inc() }
func (m *metrics) connectRefused(reason string) { m.connects.WithLabelValues("refused", reason).Inc() }
func (m *metrics) callback(outcome string)      { m.callbacks.WithLabelValues(outcome).Inc() }
func (m *metrics) tokenSwap(outcome string)     { m.tokenSwaps.WithLabelValues(outcome).Inc() }
func (m *metrics) forget(outcome string)        { m.forgets.WithLabelValues(outcome).Inc() }
func (m *metrics) notification(outcome string)  { m.notifications.WithLabelValues(outcome).Inc() }
func (m *metrics) observe(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.latency.WithLabelValues(route, method, strconv.Itoa(code)).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
