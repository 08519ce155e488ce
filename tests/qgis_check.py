"""Open a tanhui QGIS project in real QGIS, check every layer, render it; print a JSON report.

Run with the SYSTEM python that has Debian's QGIS bindings (not the test virtualenv):

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py OUT/tanhui.qgs OUT/render.png

Report (stdout, one JSON document):
  qgis_version, project_read, project_crs {authid, wkt, proj, description, valid},
  layers: one entry per project layer {id, name, source, provider, type, valid, crs_*,
      same_crs_as_project, same_crs_as_data, renderer, classification_attribute, n_ranges,
      n_palette, labels_enabled, abstract, render_colours, render_file},
  direct_gpkg: the GeoPackage layers opened on their own (stored default style applied?)
      {layer, valid, renderer, feature_count, abstract},
  tree: [(group, layer name, checked)], render {file, width, height, colours, layers}.
The test (tests/test_qgis_project.py) asserts on this report; the script itself only fails
(exit 1) when QGIS cannot start or the project file cannot be read.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402  (QT_QPA_PLATFORM must be set first)
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def same_crs(a, b, points) -> bool:
    """Equal CRSs, or the same coordinates after a transformation (custom CRSs carry no id).

    ``points`` are (x, y) in ``a``; a difference above 1 mm (1e-8 degrees) means different.
    """
    if not (a.isValid() and b.isValid()):
        return False
    if a == b:
        return True
    try:
        ct = QgsCoordinateTransform(a, b, QgsProject.instance())
        tol = 1e-8 if a.isGeographic() else 1e-3
        for x, y in points:
            q = ct.transform(QgsPointXY(x, y))
            if abs(q.x() - x) > tol or abs(q.y() - y) > tol:
                return False
        return True
    except Exception:  # noqa: BLE001 - a failed transformation means "not the same"
        return False


def render(layers, crs, extent, path: Path, size=(800, 800)) -> dict:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setOutputSize(QSize(*size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setExtent(extent)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    img.save(str(path), "PNG")
    colours = set()
    w, h = img.width(), img.height()
    step = max(1, min(w, h) // 200)
    n = drawn = 0
    white = QColor(255, 255, 255).rgb()
    for y in range(0, h, step):
        for x in range(0, w, step):
            px = img.pixel(x, y)
            colours.add(px)
            n += 1
            drawn += px != white
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    return {"file": str(path), "width": w, "height": h, "colours": len(colours),
            "drawn_share": drawn / max(n, 1),
            "errors": errors, "layers": [lay.name() for lay in layers]}


def renderer_info(layer) -> dict:
    out = {"renderer": None}
    if isinstance(layer, QgsRasterLayer):
        r = layer.renderer()
        if r is None:
            return out
        out["renderer"] = r.type()
        if r.type() == "paletted":
            out["n_palette"] = len(r.classes())
        if r.type() == "singlebandpseudocolor":
            shader = r.shader().rasterShaderFunction()
            out["n_ramp_items"] = len(shader.colorRampItemList())
            out["classification_min"] = r.classificationMin()
            out["classification_max"] = r.classificationMax()
        return out
    if isinstance(layer, QgsVectorLayer):
        r = layer.renderer()
        out["labels_enabled"] = bool(layer.labelsEnabled())
        if layer.labelsEnabled() and layer.labeling() is not None:
            try:
                out["label_field"] = layer.labeling().settings().fieldName
            except Exception:  # noqa: BLE001 - rule-based labelling has no single field
                out["label_field"] = None
        if r is None:
            return out
        out["renderer"] = r.type()
        if r.type() == "graduatedSymbol":
            out["classification_attribute"] = r.classAttribute()
            out["n_ranges"] = len(r.ranges())
            out["range_bounds"] = [(rg.lowerValue(), rg.upperValue()) for rg in r.ranges()]
            out["range_colours"] = [rg.symbol().color().name() for rg in r.ranges()]
        if r.type() == "singleSymbol":
            sym = r.symbol()
            out["fill_style"] = sym.symbolLayer(0).properties().get("style")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    qgs, png = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    app = QgsApplication([], False)
    app.initQgis()
    report: dict = {"qgis_version": Qgis.QGIS_VERSION}
    project = QgsProject.instance()
    ok = project.read(str(qgs))
    report["project_read"] = bool(ok)
    if not ok:
        print(json.dumps(report), flush=True)
        return 1
    pcrs = project.crs()
    view = project.viewSettings().defaultViewExtent()
    points = [(view.xMinimum(), view.yMinimum()), (view.center().x(), view.center().y()),
              (view.xMaximum(), view.yMaximum())]
    report["project_crs"] = {"valid": pcrs.isValid(), "authid": pcrs.authid(),
                             "wkt": pcrs.toWkt(), "proj": pcrs.toProj(),
                             "description": pcrs.description()}
    report["absolute_paths"] = project.readBoolEntry("Paths", "/Absolute", True)[0]
    report["title"] = project.title()
    report["abstract"] = project.metadata().abstract()

    tree = []
    for node in project.layerTreeRoot().findLayers():
        parent = node.parent()
        tree.append([parent.name() if parent is not project.layerTreeRoot() else "",
                     node.name(), node.isVisible()])
    report["tree"] = tree
    ordered = [n.layer() for n in project.layerTreeRoot().findLayers()]

    out_dir = png.parent / (png.stem + "_layers")
    out_dir.mkdir(exist_ok=True)
    layers = []
    full = QgsRectangle()
    for i, lay in enumerate(ordered):
        entry = {"id": lay.id(), "name": lay.name(), "source": lay.source(),
                 "provider": lay.providerType(), "valid": lay.isValid(),
                 "type": "raster" if isinstance(lay, QgsRasterLayer) else "vector",
                 "crs_authid": lay.crs().authid(), "crs_valid": lay.crs().isValid(),
                 "same_crs_as_project": same_crs(pcrs, lay.crs(), points),
                 "abstract": lay.metadata().abstract()}
        if lay.isValid() and lay.dataProvider() is not None:
            entry["same_crs_as_data"] = same_crs(lay.crs(), lay.dataProvider().crs(), points) or (
                isinstance(lay, QgsVectorLayer) and not lay.isSpatial())
        entry.update(renderer_info(lay))
        if isinstance(lay, QgsVectorLayer):
            entry["geometry_type"] = lay.geometryType()
            entry["feature_count"] = lay.featureCount()
            entry["fields"] = [f.name() for f in lay.fields()]
        spatial = not (isinstance(lay, QgsVectorLayer) and not lay.isSpatial())
        if lay.isValid() and spatial:
            # Each layer alone over the project's default view (where the regions are; a
            # mosaic's extent is whole tiles, mostly nodata).
            ext = lay.extent()
            full.combineExtentWith(ext)
            where = view if not view.isEmpty() else ext.buffered(
                0.02 * max(ext.width(), ext.height()))
            r = render([lay], pcrs, where, out_dir / f"{i:02d}.png", size=(200, 200))
            entry["render_colours"] = r["colours"]
            entry["render_drawn_share"] = r["drawn_share"]
            entry["render_errors"] = r["errors"]
            entry["render_file"] = r["file"]
        layers.append(entry)
    report["layers"] = layers

    visible = [n.layer() for n in project.layerTreeRoot().findLayers() if n.isVisible()]
    extent = view if not view.isEmpty() else full
    report["default_view_extent"] = [view.xMinimum(), view.yMinimum(), view.xMaximum(),
                                     view.yMaximum()] if not view.isEmpty() else None
    report["render"] = render(visible, pcrs, extent, png)

    # The GeoPackage layers on their own: does QGIS apply the style stored in layer_styles?
    gpkg = qgs.parent / "zones.gpkg"
    direct = []
    if gpkg.is_file():
        from osgeo import ogr

        ds = ogr.Open(str(gpkg))
        names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
        ds = None
        for name in names:
            if name == "layer_styles":
                continue
            lay = QgsVectorLayer(f"{gpkg}|layername={name}", name, "ogr")
            d = {"layer": name, "valid": lay.isValid(), "feature_count": lay.featureCount(),
                 "abstract": lay.metadata().abstract(), "spatial": lay.isSpatial()}
            d.update(renderer_info(lay))
            if lay.isValid() and lay.isSpatial():
                d["same_crs_as_project"] = same_crs(pcrs, lay.crs(), points)
            direct.append(d)
    report["direct_gpkg"] = direct
    print(json.dumps(report, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # QGIS 3.22's Python bindings can crash while tearing down Qt objects at interpreter
    # exit (after the report is written); leave without running those destructors.
    os._exit(code)
