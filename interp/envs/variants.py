"""The built-in variants. Importing this module registers them."""

from interp.envs.core import Variant, register

register(Variant("coinrun", "coinrun", "Stock CoinRun: the coin is always at the end of the level."))
register(Variant("maze", "maze", "Stock Maze: cheese at a random cell."))
register(Variant("heist", "heist", "Stock Heist: collect coloured keys to open doors, then the gem."))
