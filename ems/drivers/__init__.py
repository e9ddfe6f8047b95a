"""The driver's side: the preferences a driver gives, signed widget links, what the widget shows."""
