"""`ems scsp-bench`: a CPO that tries several SCSPs on the same sessions and scores each.

It plays the CPO side of OCPI 2.2.1 (the CPO simulator's back-end, `examples.cpo_simulator`)
towards each SCSP, applies each SCSP's charging profiles to its own copy of the cars on the
site's per-phase physics, and scores it from what the cars drew (the replay's KPIs) and from
the OCPI traffic. It imports the EMS only for pure computation (`ems.replay` KPIs, physics and
report; OCPI schemas); an EMS under test is a separate process it talks OCPI to.
"""
