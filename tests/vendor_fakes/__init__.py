"""Local servers that speak each cloud vendor's documented protocol and record what they receive."""
