"""QGIS 3 layer styles (.qml) for tanhui outputs.

QGIS applies ``<name>.qml`` automatically when it opens ``<name>.tif``, and
styles stored in a GeoPackage's ``layer_styles`` table when it opens that
layer (see :func:`tanhui.outputs.write_gpkg_layers`). The functions here
return QML text; :func:`write_qml` writes it beside a raster.

Renderers
---------
* :func:`raster_qml_sequential`: ``singlebandpseudocolor``, interpolated
  viridis or YlGn ramp between fixed limits (carbon stock, NPP).
* :func:`raster_qml_diverging`: ``singlebandpseudocolor`` from -vabs to +vabs,
  red (source, loss) through white at 0 to blue (sink); for the sink-positive
  NEP and stock-change rasters (science.md §0.2).
* :func:`raster_qml_classes`: ``paletted`` renderer for land-cover classes.
* :func:`vector_qml_graduated`: ``graduatedSymbol`` polygon renderer on a field.
* :func:`vector_qml_outline`: ``singleSymbol`` hollow polygons with optional labels.

Colour ramps: viridis (matplotlib, van der Walt & Smith 2015) and ColorBrewer
YlGn and RdBu (Brewer, colorbrewer2.org), sampled at 9 stops, all readable with
colour-vision deficiency; the RdBu centre is set to pure white so 0 is neutral.

Format notes: the files declare ``version="3.22.0"`` (the oldest QGIS 3 LTR
still shipped by Debian stable, bookworm); newer QGIS versions read them
unchanged. Symbol-layer properties are written both as the ``<Option
type="Map">`` block QGIS >= 3.20 reads and as the ``<prop k v>`` elements older
3.x versions read, as QGIS 3.16–3.24 did itself. Limits are fixed
(``minMaxOrigin`` limits ``None``), so QGIS does not re-stretch the colours
to each tile's own minimum and maximum and maps of different tiles or years
stay comparable.
"""
from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tanhui.errors import InputValueError
from tanhui.outputs import atomic_path

__all__ = [
    "RAMPS",
    "raster_qml_classes",
    "raster_qml_diverging",
    "raster_qml_sequential",
    "vector_qml_graduated",
    "vector_qml_outline",
    "write_qml",
]

QGIS_VERSION = "3.22.0"
_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"

#: Colour ramps, 9 evenly spaced stops from low to high.
RAMPS: dict[str, tuple[str, ...]] = {
    # matplotlib viridis sampled at i/8
    "viridis": ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c",
                "#28ae80", "#5ec962", "#addc30", "#fde725"),
    # ColorBrewer YlGn, 9 classes
    "ylgn": ("#ffffe5", "#f7fcb9", "#d9f0a3", "#addd8e", "#78c679",
             "#41ab5d", "#238443", "#006837", "#004529"),
    # ColorBrewer RdBu reversed to run source (red) -> sink (blue); centre set to white
    "rdbu": ("#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#ffffff",
             "#d1e5f0", "#92c5de", "#4393c3", "#2166ac"),
}

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


# --------------------------------------------------------------------------- colour helpers


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def _ramp_colour(stops: Sequence[str], t: float) -> str:
    """Colour at position ``t`` in [0, 1] by linear RGB interpolation between equal stops."""
    t = min(max(t, 0.0), 1.0)
    pos = t * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    frac = pos - i
    a, b = _rgb(stops[i]), _rgb(stops[i + 1])
    return _hex([ca + (cb - ca) * frac for ca, cb in zip(a, b)])


def _qgis_colour(hex_colour: str, alpha: int = 255) -> str:
    r, g, b = _rgb(hex_colour)
    return f"{r},{g},{b},{alpha}"


def _num(v: float) -> str:
    """Value for an XML attribute: exact enough to round-trip a float32 limit."""
    return format(float(v), ".10g")


def _label_num(v: float) -> str:
    """Value for a legend label: 4 significant digits, no exponent for everyday magnitudes."""
    if v == 0:
        return "0"
    return format(float(v), ".4g")


def _check_finite(name: str, v: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError) as err:
        raise InputValueError(f"QML style: {name} = {v!r} is not a number. Pass a float.") from err
    if not math.isfinite(f):
        raise InputValueError(
            f"QML style: {name} = {v!r} is not finite. Compute limits with np.nanmin/np.nanmax "
            "or np.nanpercentile so NaN nodata does not leak in."
        )
    return f


def _check_units(label_units: str) -> str:
    if not label_units or not str(label_units).strip():
        raise InputValueError(
            "QML style: label_units is empty. Legends state units (science.md §12 item 1), "
            "e.g. 't C ha-1'."
        )
    return str(label_units).strip()


# --------------------------------------------------------------------------- XML skeletons


def _qgis_root(**attrs: str) -> ET.Element:
    return ET.Element(
        "qgis",
        version=QGIS_VERSION,
        hasScaleBasedVisibilityFlag="0",
        minScale="1e+08",
        maxScale="0",
        **attrs,
    )


def _serialise(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return _DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n"


def _option_map(parent: ET.Element, props: dict[str, str], *, with_props: bool = True) -> None:
    """Symbol-layer properties in both the >= 3.20 ``Option`` form and the older ``prop`` form."""
    opt = ET.SubElement(parent, "Option", type="Map")
    for k, v in props.items():
        ET.SubElement(opt, "Option", name=k, type="QString", value=v)
    if with_props:
        for k, v in props.items():
            ET.SubElement(parent, "prop", k=k, v=v)


def _empty_dd(parent: ET.Element, tag: str = "data_defined_properties") -> None:
    dd = ET.SubElement(parent, tag)
    opt = ET.SubElement(dd, "Option", type="Map")
    ET.SubElement(opt, "Option", name="name", type="QString", value="")
    ET.SubElement(opt, "Option", name="properties")
    ET.SubElement(opt, "Option", name="type", type="QString", value="collection")


def _fill_symbol(
    parent: ET.Element,
    name: str,
    *,
    fill: str | None,
    outline: str,
    outline_width_mm: float,
) -> ET.Element:
    sym = ET.SubElement(
        parent, "symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0"
    )
    _empty_dd(sym)
    layer = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0",
                                         "pass": "0"})
    _option_map(
        layer,
        {
            "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
            "color": _qgis_colour(fill) if fill else "0,0,0,0",
            "joinstyle": "bevel",
            "offset": "0,0",
            "offset_map_unit_scale": "3x:0,0,0,0,0,0",
            "offset_unit": "MM",
            "outline_color": _qgis_colour(outline),
            "outline_style": "solid",
            "outline_width": _num(outline_width_mm),
            "outline_width_unit": "MM",
            "style": "solid" if fill else "no",
        },
    )
    _empty_dd(layer)
    return sym


def _min_max_origin(parent: ET.Element) -> None:
    # limits None = user-defined: QGIS keeps our values instead of re-stretching per tile.
    mmo = ET.SubElement(parent, "minMaxOrigin")
    for tag, text in (
        ("limits", "None"),
        ("extent", "WholeRaster"),
        ("statAccuracy", "Estimated"),
        ("cumulativeCutLower", "0.02"),
        ("cumulativeCutUpper", "0.98"),
        ("stdDevFactor", "2"),
    ):
        ET.SubElement(mmo, tag).text = text


def _raster_pipe_tail(pipe: ET.Element) -> None:
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(
        pipe, "huesaturation", saturation="0", grayscaleMode="0", invertColors="0",
        colorizeOn="0", colorizeRed="255", colorizeGreen="128", colorizeBlue="128",
        colorizeStrength="100",
    )
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"


def _raster_root(
    renderer_type: str, **renderer_attrs: str
) -> tuple[ET.Element, ET.Element, ET.Element]:
    root = _qgis_root(styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(
        provider, "resampling", enabled="false", maxOversampling="2",
        zoomedInResamplingMethod="nearestNeighbour", zoomedOutResamplingMethod="nearestNeighbour",
    )
    renderer = ET.SubElement(
        pipe, "rasterrenderer", type=renderer_type, band="1", opacity="1", alphaBand="-1",
        nodataColor="", **renderer_attrs,
    )
    ET.SubElement(renderer, "rasterTransparency")
    _min_max_origin(renderer)
    return root, pipe, renderer


def _gradient_ramp(parent: ET.Element, stops: Sequence[str]) -> None:
    ramp = ET.SubElement(parent, "colorramp", type="gradient", name="[source]")
    inner = "".join(
        f"{i / (len(stops) - 1):.6g};{_qgis_colour(c)}:" for i, c in enumerate(stops[1:-1], 1)
    ).rstrip(":")
    _option_map(
        ramp,
        {
            "color1": _qgis_colour(stops[0]),
            "color2": _qgis_colour(stops[-1]),
            "discrete": "0",
            "rampType": "gradient",
            "stops": inner,
        },
        with_props=True,
    )


def _pseudocolor(
    vmin: float, vmax: float, stops: Sequence[str], items: Sequence[tuple[float, str, str]],
    label_units: str,
) -> str:
    root, pipe, renderer = _raster_root(
        "singlebandpseudocolor", classificationMin=_num(vmin), classificationMax=_num(vmax)
    )
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader",
                           colorRampType="INTERPOLATED", classificationMode="1", clip="0",
                           minimumValue=_num(vmin), maximumValue=_num(vmax), labelPrecision="4")
    _gradient_ramp(shader, stops)
    for value, colour, label in items:
        ET.SubElement(shader, "item", value=_num(value), color=colour, alpha="255", label=label)
    ET.SubElement(
        shader, "rampLegendSettings", prefix="", suffix=f" {label_units}", minimumLabel="",
        maximumLabel="", direction="0", useContinuousLegend="1", orientation="2",
    )
    _raster_pipe_tail(pipe)
    ET.SubElement(root, "blendMode").text = "0"
    return _serialise(root)


# --------------------------------------------------------------------------- raster styles


def raster_qml_sequential(
    vmin: float,
    vmax: float,
    *,
    ramp: Literal["viridis", "ylgn"] = "viridis",
    label_units: str,
) -> str:
    """Continuous single-band style from ``vmin`` to ``vmax`` (carbon stock, NPP).

    Parameters
    ----------
    vmin, vmax : float
        Colour limits in the raster's unit, ``vmin < vmax``; values outside take
        the end colours. Use fixed, round limits (or a percentile of the whole
        run) so tiles and years are comparable.
    ramp : {"viridis", "ylgn"}, default "viridis"
        Colour ramp (see :data:`RAMPS`).
    label_units : str
        Unit shown in the legend, e.g. ``"t C ha-1"``.

    Returns
    -------
    str
        QML text (``singlebandpseudocolor`` renderer, 9 interpolated stops).

    Examples
    --------
    >>> qml = raster_qml_sequential(0, 80, label_units="t C ha-1")
    >>> ET.fromstring(qml).find(".//rasterrenderer").get("type")
    'singlebandpseudocolor'
    """
    vmin, vmax = _check_finite("vmin", vmin), _check_finite("vmax", vmax)
    units = _check_units(label_units)
    if not vmin < vmax:
        raise InputValueError(
            f"raster_qml_sequential: vmin {vmin} is not below vmax {vmax}. Pass vmin < vmax "
            "(e.g. 0 and the 98th percentile)."
        )
    if ramp not in ("viridis", "ylgn"):
        raise InputValueError(
            f"raster_qml_sequential: unknown ramp {ramp!r}; expected 'viridis' or 'ylgn'."
        )
    stops = RAMPS[ramp]
    n = len(stops)
    items = []
    for i, colour in enumerate(stops):
        value = vmin + (vmax - vmin) * i / (n - 1)
        items.append((value, colour, f"{_label_num(value)} {units}"))
    return _pseudocolor(vmin, vmax, stops, items, units)


def raster_qml_diverging(vabs: float, *, label_units: str) -> str:
    """Continuous style symmetric about 0: red (source, loss) → white → blue (sink).

    For sink-positive rasters (NEP, stock change; science.md §0.2): negative
    values, a net release, are red; positive values, net uptake, are blue; 0 is
    white.

    Parameters
    ----------
    vabs : float
        Half-range, > 0; the colours run from ``-vabs`` to ``+vabs``.
    label_units : str
        Unit shown in the legend, e.g. ``"g C m-2 yr-1"``.

    Returns
    -------
    str
        QML text (``singlebandpseudocolor``, 9 stops at ``-vabs .. 0 .. +vabs``).
    """
    vabs = _check_finite("vabs", vabs)
    units = _check_units(label_units)
    if not vabs > 0:
        raise InputValueError(
            f"raster_qml_diverging: vabs {vabs} is not positive. Pass the half-range, e.g. "
            "the 98th percentile of |NEP|."
        )
    stops = RAMPS["rdbu"]
    n = len(stops)
    centre = n // 2
    items = []
    for i, colour in enumerate(stops):
        # Exact mirror values: -v and +v are the same float, 0 is exactly 0.
        value = vabs * (i - centre) / centre
        text = f"{_label_num(value)} {units}"
        if i == 0:
            text += " (source)"
        elif i == n - 1:
            text += " (sink)"
        elif i == centre:
            text = f"0 {units} (neutral)"
        items.append((value, colour, text))
    return _pseudocolor(-vabs, vabs, stops, items, units)


def raster_qml_classes(classes: Sequence[tuple[int, str, str]]) -> str:
    """Paletted style for class rasters (land cover), one colour and label per code.

    Parameters
    ----------
    classes : sequence of (int, str, str)
        ``(value, "#rrggbb", label)`` per class, e.g. from ``landcover/classes.csv``.
        Codes absent from the list (nodata 0/255) are not drawn.

    Returns
    -------
    str
        QML text (``paletted`` renderer).
    """
    if not classes:
        raise InputValueError("raster_qml_classes: no classes given. Pass (value, colour, label).")
    seen: set[int] = set()
    entries = []
    for value, colour, label in classes:
        if isinstance(value, bool) or int(value) != value:
            raise InputValueError(
                f"raster_qml_classes: class value {value!r} is not an integer code."
            )
        if int(value) in seen:
            raise InputValueError(f"raster_qml_classes: class value {value} appears twice.")
        if not isinstance(colour, str) or not _HEX.match(colour):
            raise InputValueError(
                f"raster_qml_classes: class {value} colour {colour!r} is not '#rrggbb'."
            )
        seen.add(int(value))
        entries.append((int(value), colour.lower(), str(label)))
    entries.sort()
    root, pipe, renderer = _raster_root("paletted")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, colour, label in entries:
        ET.SubElement(palette, "paletteEntry", value=str(value), color=colour, alpha="255",
                      label=label)
    _raster_pipe_tail(pipe)
    ET.SubElement(root, "blendMode").text = "0"
    return _serialise(root)


# --------------------------------------------------------------------------- vector styles


def _vector_root(labels: bool) -> ET.Element:
    return _qgis_root(
        styleCategories="Symbology|Labeling", labelsEnabled="1" if labels else "0",
        simplifyDrawingHints="1", simplifyDrawingTol="1", simplifyAlgorithm="0",
        simplifyLocal="1", simplifyMaxScale="1", readOnly="0",
    )


def _vector_tail(root: ET.Element) -> None:
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    # 2 = polygon: QGIS refuses to apply the style to a layer of another geometry type.
    ET.SubElement(root, "layerGeometryType").text = "2"


def _labeling(root: ET.Element, field: str, colour: str) -> None:
    lab = ET.SubElement(root, "labeling", type="simple")
    settings = ET.SubElement(lab, "settings", calloutType="simple")
    style = ET.SubElement(
        settings, "text-style", fieldName=field, isExpression="0", fontSize="9",
        fontSizeUnit="Point", fontItalic="0", textColor=_qgis_colour(colour),
        textOpacity="1", multilineHeight="1", blendMode="0", allowHtml="0",
    )
    # White halo keeps labels readable over any raster.
    ET.SubElement(
        style, "text-buffer", bufferDraw="1", bufferSize="0.8", bufferSizeUnits="MM",
        bufferColor="255,255,255,255", bufferOpacity="1", bufferNoFill="1", bufferJoinStyle="128",
        bufferBlendMode="0",
    )
    ET.SubElement(settings, "text-format", wrapChar="", multilineAlign="3", formatNumbers="0",
                  decimals="3", plussign="0")
    # placement 1 = "offset from centroid"; centroidInside keeps labels inside concave zones.
    ET.SubElement(
        settings, "placement", placement="1", centroidInside="1", centroidWhole="0",
        fitInPolygonOnly="0", quadOffset="4", dist="0", distUnits="MM", xOffset="0",
        yOffset="0", offsetUnits="MM", priority="5", layerType="PolygonGeometry",
        overlapHandling="PreventOverlap",
    )
    ET.SubElement(
        settings, "rendering", drawLabels="1", obstacle="1", obstacleFactor="1", obstacleType="1",
        labelPerPart="0", mergeLines="0", limitNumLabels="0", maxNumLabels="2000",
        minFeatureSize="0", scaleVisibility="0", scaleMin="0", scaleMax="0",
        fontLimitPixelSize="0", fontMinPixelSize="3", fontMaxPixelSize="10000",
        upsidedownLabels="0", displayAll="0", zIndex="0",
    )


def vector_qml_graduated(
    field: str,
    breaks: Sequence[float],
    *,
    label_units: str,
    diverging: bool = False,
) -> str:
    """Graduated polygon style on a numeric field (zone totals, densities, change).

    Parameters
    ----------
    field : str
        Attribute to classify, e.g. ``"stock_tC"``.
    breaks : sequence of float
        Class edges, strictly increasing, at least 2 (n edges give n - 1 classes).
    label_units : str
        Unit shown in the class labels.
    diverging : bool, default False
        Colour classes by their midpoint on the red-white-blue ramp spanning
        ``±max(|breaks|)`` (sink-positive change: red loss, blue gain); otherwise
        viridis from the first to the last class.

    Returns
    -------
    str
        QML text (``graduatedSymbol`` renderer, ``GraduatedColor``).
    """
    if not field or not str(field).strip():
        raise InputValueError("vector_qml_graduated: field is empty. Name the attribute to map.")
    units = _check_units(label_units)
    edges = [_check_finite(f"breaks[{i}]", b) for i, b in enumerate(breaks)]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise InputValueError(
            f"vector_qml_graduated: breaks {edges} must be at least 2 strictly increasing "
            "values (class edges)."
        )
    n = len(edges) - 1
    if diverging:
        vabs = max(abs(edges[0]), abs(edges[-1]))
        colours = [
            _ramp_colour(RAMPS["rdbu"], 0.5 + (lo + hi) / 2 / (2 * vabs))
            for lo, hi in zip(edges, edges[1:])
        ]
    else:
        colours = [_ramp_colour(RAMPS["viridis"], i / max(n - 1, 1)) for i in range(n)]

    root = _vector_root(labels=False)
    renderer = ET.SubElement(
        root, "renderer-v2", type="graduatedSymbol", attr=str(field),
        graduatedMethod="GraduatedColor", symbollevels="0", enableorderby="0", forceraster="0",
        referencescale="-1",
    )
    ranges = ET.SubElement(renderer, "ranges")
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        ET.SubElement(
            ranges, "range", lower=f"{lo:.15f}", upper=f"{hi:.15f}", symbol=str(i),
            label=f"{_label_num(lo)} – {_label_num(hi)} {units}", render="true",
        )
    symbols = ET.SubElement(renderer, "symbols")
    for i, colour in enumerate(colours):
        _fill_symbol(symbols, str(i), fill=colour, outline="#232323", outline_width_mm=0.26)
    source = ET.SubElement(renderer, "source-symbol")
    _fill_symbol(source, "0", fill=colours[0], outline="#232323", outline_width_mm=0.26)
    _gradient_ramp(renderer, RAMPS["rdbu" if diverging else "viridis"])
    method = ET.SubElement(renderer, "classificationMethod", id="Custom")
    ET.SubElement(method, "symmetricMode", enabled="1" if diverging else "0", symmetrypoint="0",
                  astride="0")
    ET.SubElement(method, "labelFormat", format="%1 – %2", labelprecision="4",
                  trimtrailingzeroes="1")
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    _vector_tail(root)
    return _serialise(root)


def vector_qml_outline(
    colour: str, width_mm: float = 0.6, label_field: str | None = None
) -> str:
    """Hollow polygons (outline only), optionally labelled; for regions or zones drawn on top.

    Parameters
    ----------
    colour : str
        Outline (and label) colour ``"#rrggbb"``.
    width_mm : float, default 0.6
        Outline width in millimetres on the map.
    label_field : str, optional
        Attribute to label each polygon with (e.g. ``"name"``); no labels if None.

    Returns
    -------
    str
        QML text (``singleSymbol`` renderer, ``SimpleFill`` with no brush).
    """
    if not isinstance(colour, str) or not _HEX.match(colour):
        raise InputValueError(f"vector_qml_outline: colour {colour!r} is not '#rrggbb'.")
    width = _check_finite("width_mm", width_mm)
    if width <= 0:
        raise InputValueError(f"vector_qml_outline: width_mm {width} must be positive.")
    root = _vector_root(labels=label_field is not None)
    renderer = ET.SubElement(
        root, "renderer-v2", type="singleSymbol", symbollevels="0", enableorderby="0",
        forceraster="0", referencescale="-1",
    )
    symbols = ET.SubElement(renderer, "symbols")
    _fill_symbol(symbols, "0", fill=None, outline=colour, outline_width_mm=width)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    if label_field is not None:
        if not str(label_field).strip():
            raise InputValueError("vector_qml_outline: label_field is empty; pass a field or None.")
        _labeling(root, str(label_field), colour)
    _vector_tail(root)
    return _serialise(root)


def write_qml(path: str | os.PathLike[str], qml: str) -> Path:
    """Write QML text atomically; a raster path is turned into ``<raster stem>.qml`` beside it.

    QGIS loads ``stock.qml`` as the default style of ``stock.tif`` (and of
    ``stock.vrt``), so pass either the raster path or the ``.qml`` path.

    Returns
    -------
    Path
        The ``.qml`` path written.

    Raises
    ------
    InputValueError
        ``qml`` is not well-formed XML with a ``<qgis>`` root.
    """
    target = Path(path)
    if target.suffix.lower() != ".qml":
        target = target.with_suffix(".qml")
    try:
        root = ET.fromstring(qml)
    except ET.ParseError as err:
        raise InputValueError(
            f"write_qml {target}: the style text is not well-formed XML ({err}). Build it with "
            "the tanhui.styles functions."
        ) from err
    if root.tag != "qgis":
        raise InputValueError(
            f"write_qml {target}: root element is <{root.tag}>; expected <qgis>."
        )
    with atomic_path(target) as tmp:
        tmp.write_text(qml, encoding="utf-8")
    return target
