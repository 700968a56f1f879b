"""Prompt management: templates parsed on save and rendered at use (data, never code)."""
