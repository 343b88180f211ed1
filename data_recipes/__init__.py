"""Data recipes shipped with affectreason: one YAML per corpus (read by ``affectreason data RECIPE``), plus
small hooks for formats that need code. Installed as the package ``affectreason.data_recipes``."""
