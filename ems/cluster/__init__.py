"""The EMS on several machines (issue #18): API replicas, a task broker, workers.

`ems serve` replicas store what CPOs push and, with `EMS_BROKER_URL` set, append each event
that matters for planning to the database's event log (`forward`) and poke the broker; `ems
worker` processes (`worker`) turn the log into planning demands, plan each site under a lease,
and dispatch the outbox, each row claimed by one worker. The broker (Celery on Redis) carries
only wake-ups and plan tasks: the database stays the truth, so a message the broker loses costs
one sweep interval, never an event. Without a broker nothing here runs (`make demo`).
"""
