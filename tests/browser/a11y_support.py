"""axe-core in the browser tests: the accessibility rules of WCAG 2.1 A and AA, and axe's best
practices, run over a page as it stands.

axe-core is a devDependency of the console (console/package.json), installed by ``npm ci`` in
console/ (``make console-check`` runs it). It is evaluated into the page under test through
the browser's debugging protocol, which the page's Content-Security-Policy does not govern: no
product page or bundle ever carries it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[2] / "console" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

RUN = """async (tags) => {
  const result = await axe.run(document, { runOnly: tags });
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join('; ')}`);
}"""


@cache
def _axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run 'npm ci' in console/ (make console-check does)")
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[str]:
    """What axe-core finds wrong on ``page`` now, one line per rule broken (empty when none)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    found: list[str] = page.evaluate(RUN, TAGS)
    return found
