"""The documentation site builds with warnings as errors (MkDocs strict mode).

This runs in CI through the README's test command; it needs the ``test`` extra, which
installs mkdocs and mkdocstrings.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("mkdocs") is None and not
                    __import__("importlib").util.find_spec("mkdocs"), reason="mkdocs not installed")
def test_docs_site_builds_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (tmp_path / "site" / "api" / "index.html").read_text()
    # the API page is generated from docstrings, not empty
    assert "fit_ml" in html and "varcorr" in html


def test_every_docs_page_is_in_the_nav():
    import re
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    listed = set(re.findall(r":\s*([\w-]+\.md)", nav))
    assert pages == listed, f"pages not in nav: {pages - listed}; missing files: {listed - pages}"
