"""The book pipeline: execute the chapters with papermill, render them with Jupyter Book 1.x.

- :mod:`.params`: chapter parameters, typed like papermill's and checked against the
  chapter's ``parameters`` cell before anything runs.
- :mod:`.execute`: one chapter, jupytext percent file -> notebook -> papermill.
- :mod:`.stage`: the table of contents, vendored JavaScript, staged configuration.
- :mod:`.build`: the whole book into ``BUILD_DIR/html``.
- :mod:`.plan`: what the profile runs and how long, said before anything runs; ``auto`` ->
  ``paper`` above an hour asks for the profile by name.
- :mod:`.dispatch`: the chapters' experiment cells on a serial, dask or Slurm executor.
- :mod:`.profile`: where a build's time went, cell by cell.
- :mod:`.cli`: ``python -m advmed.book run|build|profile``.
- :mod:`.sphinx_ext`: page fixes registered in ``_config.yml``.

The pipeline sits above every other layer: it may import the experiments (nothing imports it).
"""
from .build import PROFILES, BuildResult, book_root, build_book, check_build, format_times
from .cli import main
from .execute import KERNEL_NAME, ChapterError, ChapterResult, kernel_env_dir, run_chapter, to_notebook
from .params import ParameterError, chapter_parameters, check_parameters, parse_parameters, resolve_value
from .profile import cell_times, format_cell_times
from .stage import (IPYWIDGETS_JS, MATHJAX_PATH, REPOSITORY_ENV, VENDOR_DIRS, VENDOR_FILES, find_source, matches,
                    repository_url, stage_bibliography, stage_config, stage_vendor, toc_files, vendor_root)

__all__ = ["IPYWIDGETS_JS", "KERNEL_NAME", "MATHJAX_PATH", "PROFILES", "REPOSITORY_ENV", "VENDOR_DIRS", "VENDOR_FILES",
           "BuildResult", "ChapterError", "ChapterResult", "ParameterError", "book_root", "build_book",
           "cell_times", "chapter_parameters", "check_build", "check_parameters", "find_source", "format_cell_times", "format_times", "kernel_env_dir",
           "main", "matches", "parse_parameters", "repository_url", "resolve_value", "run_chapter",
           "stage_bibliography", "stage_config", "stage_vendor", "to_notebook", "toc_files", "vendor_root"]
