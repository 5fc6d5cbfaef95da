"""Build, evaluate and score the demo models that ship in the package (the image model, its
ControlNets, the captioner), from procedurally drawn pictures of plain shapes.

The server reads only the shipped folders (``ronghe.engines.shipped``); this tree is what
made them.  ``python -m tools.demo_models --help`` from the repository root, or
``make demo-model ARGS="..."``; docs/demo-model.md has the commands and the figures.

- ``diffusion/``: the shapes world (``shapes``), its scorer (``scoring``, also the tests'
  oracle of what an image shows), the tokenizer and modules, the build and the evals.
- ``captioning/``: the captioner's data, modules, build and eval.
- ``resumable``: checkpoints that every build resumes from.
"""
