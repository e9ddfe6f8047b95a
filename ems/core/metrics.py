"""What a running EMS counts, for Prometheus (`GET /metrics`): one registry per `EmsContext`.

The stages count what they do (requests, plans, dispatch outcomes, scheduler lag) on these
instruments; what is a state of the store (outbox depth, active sessions, planned power per
site) is read at scrape time by `ems.admin.metrics`. A registry per context, not the
process-wide default, so that several EMS instances in one process (the tests) stay apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ems.core.events import ChargingProfileOutcome, DomainEvent

__all__ = ["Metrics"]

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PLAN_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ocpi_requests = Counter(
            "ems_ocpi_requests",
            "OCPI requests received, by module, method and HTTP status.",
            ["module", "method", "status"],
            registry=self.registry,
        )
        self.ocpi_request_seconds = Histogram(
            "ems_ocpi_request_seconds",
            "Time to answer an OCPI request, body read included.",
            ["module", "method"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.plans = Counter(
            "ems_plans",
            "Plans stored, by what triggered them and the solver's status.",
            ["trigger", "status"],
            registry=self.registry,
        )
        self.plan_build_seconds = Histogram(
            "ems_plan_build_seconds",
            "Time to build a site's LP.",
            buckets=_PLAN_BUCKETS_S,
            registry=self.registry,
        )
        self.plan_solve_seconds = Histogram(
            "ems_plan_solve_seconds",
            "Time to solve a site's LP.",
            buckets=_PLAN_BUCKETS_S,
            registry=self.registry,
        )
        self.profile_results = Counter(
            "ems_profile_results",
            "Answers of CPOs to the profiles sent (synchronous and result callbacks), by partner.",
            ["partner_id", "kind", "result"],
            registry=self.registry,
        )
        self.dispatch_retries = Counter(
            "ems_dispatch_retries",
            "Outbox deliveries that failed and were scheduled again, by partner.",
            ["partner_id"],
            registry=self.registry,
        )
        self.scheduler_lag_seconds = Histogram(
            "ems_scheduler_lag_seconds",
            "How late a scheduled job (re-plan, pull) started against its planned time.",
            ["job"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def on_event(self, event: DomainEvent) -> None:
        """Bus subscriber: what CPOs answered to our profiles, however the answer came."""
        if isinstance(event, ChargingProfileOutcome):
            self.profile_results.labels(str(event.partner_id), event.kind, event.result).inc()
