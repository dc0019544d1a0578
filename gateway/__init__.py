"""Akson Gateway: the open data-access layer of a shared municipal patient journal."""
