"""The planning loop: estimate each car's needs, snapshot a site, solve it, hand profiles to dispatch."""
