"""LICENSE matches pyproject's licence; CITATION.cff is valid CFF 1.2.0 in its required keys."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_license_and_citation_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert {"message", "title", "authors"} <= set(cff) and cff["version"] == project["version"]
    paper = cff["references"][0]
    assert (
        paper["title"].startswith("Image2Reg") and paper["authors"][0]["family-names"] == "Paysan"
    )
    for ref in cff["references"]:
        assert {"type", "title", "authors"} <= set(ref)
