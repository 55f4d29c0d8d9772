"""Importers from other datasets' layouts into the nuScenes format (``calico convert``)."""
