"""Perovskites on the review page: a picture of the cell, formula search and CIF export."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element, Structure

from materials.domain import candidate_structure
from materials.structures import to_cif
from pipeline.protocols import OrbitalPicture, placeholder_svg
from pipeline.registry import PRESENTERS
from pipeline.types import Candidate

SIZE = (300, 260)
"""Picture size, pixels."""

VIEW = np.array([[0.94, -0.34, 0.0], [0.16, 0.45, -0.88]])
"""Projection onto the picture plane: rows are the picture's x and y axes (an oblique view
that keeps the three cell edges apart)."""

_ELEMENT_ONLY = re.compile(r"^\s*([A-Z][a-z]?)(\s*[, ]\s*[A-Z][a-z]?)*\s*$")


def _colour(symbol: str) -> str:
    """A stable colour per element: halogens green, chalcogens red, nitrogen blue, metals by
    their group from warm to cool."""
    fixed = {"O": "#d8342c", "S": "#e0b020", "Se": "#c08a28", "N": "#3358c4", "F": "#6fc95a",
             "Cl": "#2fae4a", "Br": "#8a3b1e", "I": "#7a2f9a", "H": "#dddddd"}
    if symbol in fixed:
        return fixed[symbol]
    try:
        group = Element(symbol).group
    except ValueError:
        return "#999999"
    hue = int(300 * (group - 1) / 17)
    return f"hsl({hue}, 55%, 55%)"


@PRESENTERS.register("perovskites")
class CrystalPresenter:
    """An oblique view of the unit cell: its edges, every site (images on the cell's faces
    included) as a disc in its element's colour with the symbol written on it, and a legend
    with the formula and lattice."""

    export_format = "cif"

    def depict(self, candidate: Candidate, orbitals: OrbitalPicture | None = None) -> str:
        """See :class:`pipeline.protocols.Presenter` (crystals: no orbital shading yet)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = candidate_structure(candidate)
        except ValueError as exc:
            return placeholder_svg(f"no picture: {exc}"[:60], SIZE)
        return cell_svg(structure)

    def search(self, query: str, candidates: Sequence[Candidate]) -> list[bool]:
        """A formula matches cells of that reduced composition (``Cs2AgBiBr6``, ``CsPbI3``);
        element symbols alone (``Bi Br``, ``Bi,Br``) match cells containing all of them.

        Raises:
            ValueError: a query that is neither.
        """
        text = query.strip()
        if _ELEMENT_ONLY.match(text) and not re.search(r"\d", text) and (
                "," in text or " " in text or len(text) <= 2):
            wanted = set(re.findall(r"[A-Z][a-z]?", text))
            try:
                for symbol in wanted:
                    Element(symbol)
            except ValueError:
                raise ValueError(f"{query!r}: unknown element") from None
            return [wanted <= {str(e) for e in _composition(c).elements} for c in candidates]
        try:
            target = Composition(text).reduced_formula
        except (ValueError, KeyError):
            raise ValueError(f"{query!r} is neither a formula (CsPbI3) nor element symbols "
                             "(Bi Br)") from None
        return [_composition(c).reduced_formula == target for c in candidates]

    def export(self, candidates: Sequence[Candidate], properties: Sequence[dict[str, Any]]
               ) -> str:
        """Concatenated CIF blocks, each named by its candidate id, with the properties as
        comment lines."""
        blocks = []
        for candidate, props in zip(candidates, properties, strict=True):
            try:
                structure = candidate_structure(candidate)
            except ValueError:
                continue
            cif = to_cif(structure)
            lines = cif.splitlines()
            head = [f"data_{re.sub(r'[^A-Za-z0-9_-]', '_', candidate.id)}",
                    f"# candidate_id {candidate.id}"]
            head += [f"# {name} {value}" for name, value in props.items()
                     if value is not None and value != ""]
            body = [ln for ln in lines if not ln.startswith("data_")]
            blocks.append("\n".join(head + body))
        return "\n\n".join(blocks) + "\n"


def _composition(candidate: Candidate) -> Composition:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return candidate_structure(candidate).composition
    except ValueError:
        return Composition()


def cell_svg(structure: Structure) -> str:
    """SVG of a unit cell in an oblique view (:data:`VIEW`)."""
    w, h = SIZE
    lattice = structure.lattice.matrix
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    sites: list[tuple[np.ndarray, str]] = []
    for site in structure:
        frac = np.mod(site.frac_coords, 1.0)
        # a site on a face, edge or corner is drawn at each of its periodic images in the cell
        shifts = [np.array(s) for s in np.ndindex(2, 2, 2)]
        for shift in shifts:
            f = frac + shift
            if np.all(f <= 1.0 + 1e-6) and (np.all(shift == 0) or np.all(
                    (shift == 0) | (np.abs(frac) < 1e-3))):
                sites.append((f @ lattice, site.specie.symbol))
    points = np.array([p for p, _ in sites] + list(corners @ lattice))
    flat = points @ VIEW.T
    low, high = flat.min(0), flat.max(0)
    scale = 0.78 * min((w - 20) / max(high[0] - low[0], 1e-6),
                       (h - 60) / max(high[1] - low[1], 1e-6))

    def xy(p: np.ndarray) -> tuple[float, float]:
        q = (p @ VIEW.T - low) * scale
        return 10 + q[0] + 0.11 * (w - 20), 10 + q[1] + 0.11 * (h - 60)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for i in range(8):
        for j in range(i + 1, 8):
            if np.abs(corners[i] - corners[j]).sum() == 1:
                (x1, y1), (x2, y2) = xy(corners[i] @ lattice), xy(corners[j] @ lattice)
                out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                           'stroke="#888" stroke-width="1"/>')
    depth = np.array([p @ np.cross(VIEW[0], VIEW[1]) for p, _ in sites])
    for k in np.argsort(depth):
        position, symbol = sites[k]
        x, y = xy(position)
        radius = 7 + 5 * min(1.0, (Element(symbol).atomic_radius or 1.0) / 2.0)
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" '
                   f'fill="{_colour(symbol)}" stroke="#333" stroke-width="0.8"/>'
                   f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-size="10" '
                   f'fill="white">{escape(symbol)}</text>')
    a, b, c = structure.lattice.abc
    out.append(f'<text x="10" y="{h - 28}" font-size="13">'
               f'{escape(structure.composition.reduced_formula)}</text>'
               f'<text x="10" y="{h - 10}" font-size="11" fill="#555">a {a:.2f}, b {b:.2f}, '
               f'c {c:.2f} \u00c5; {len(structure)} sites</text></svg>')
    return "".join(out)
