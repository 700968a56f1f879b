"""``heliograph demo``: a simulated upstream and a flow of traffic through the real gateway."""
