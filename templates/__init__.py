"""The network templates shipped with sheetprop: package data (``sheetprop.templates``), not code."""
