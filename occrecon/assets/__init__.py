"""User-side assets: obtaining, converting and caching pretrained weights.

Nothing here downloads from the web except through the package registries' own clients
(``npm pack``); converted files live under :func:`occrecon.assets.cache.cache_dir`.
"""
