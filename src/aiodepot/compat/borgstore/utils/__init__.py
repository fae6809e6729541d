"""Helpers of the borgstore API: key nesting and hashing."""
