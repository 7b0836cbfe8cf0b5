"""Actions, one module per IGNY8 module. ``load_actions()`` registers them all."""


def load_actions() -> None:
    from tools import auth, planner  # noqa: F401  (importing registers the actions)
