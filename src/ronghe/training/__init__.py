"""LoRA training apart from HTTP: the domain service (``service``) and how a run that ends
without its handler settles its catalog entry (``settle``).  The job itself is
``ronghe.tasks.training``."""
