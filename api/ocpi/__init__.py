"""The OCPI surface of the EMS (role SCSP)."""
