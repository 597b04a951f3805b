"""Lava processes neurovae adds where Lava has none (kept alone in this folder: Lava's
compiler executes every module beside a Process to find its models)."""
