"""The web page that ``respaldo serve`` serves at ``/``, beside the API:
:func:`respaldo.web.site.create_site`, pages in :mod:`respaldo.web.pages`."""
