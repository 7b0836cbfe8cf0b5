"""Actions, one module per IGNY8 module. ``load_actions()`` registers them all."""


def load_actions() -> None:
    from tools import auth, billing, planner, system, writer  # noqa: F401  (importing registers them)
    from tools.ai import functions  # noqa: F401
