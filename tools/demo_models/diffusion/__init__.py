"""The demo image model and its ControlNets: the shapes world, scoring, build and eval."""
