"""Users' image datasets: named, ordered sets of their own uploaded images, used for training."""
