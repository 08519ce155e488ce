"""``tanhui grid``: list grids, or write a grid's tile index as GeoJSON for QGIS."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("grid_name", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the tile index (GeoJSON, lon/lat) to this file.")
@click.option("--region", type=click.Path(exists=True, path_type=Path), default=None,
              help="Only tiles intersecting the polygons of this vector file.")
def grid(grid_name, output, region):
    """List the shipped tile grids, or describe GRID_NAME and write its tile index.

    \b
    Example:
      tanhui grid
      tanhui grid china_albers_30m --region counties.geojson -o tiles.geojson
    """
    from ..grid import TileGrid

    if not grid_name:
        for name in TileGrid.available():
            g = TileGrid.load(name)
            click.echo(f"{name:28s} {g.res_x:g} x {g.res_y:g} {g.crs.axis_info[0].unit_name}, "
                       f"tiles {g.tile_shape[0]}x{g.tile_shape[1]}, {g.n_tile_rows}x{g.n_tile_cols} tiles  {g.description}")
        return
    g = TileGrid.load(grid_name)
    tiles = g.tile_ids()
    if region is not None:
        import geopandas as gpd

        gdf = gpd.read_file(region)
        tiles = g.tiles_intersecting(gdf)
    click.echo(f"{g.name}: {len(tiles)} tiles")
    if output:
        g.to_geojson(output, tiles=tiles)
        click.echo(f"tile index written to {output}")
