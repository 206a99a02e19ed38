"""``cnnlab serve``: a local web app to explore the operators, look inside trained models and
watch training live.

It is a thin layer: the numbers come from :mod:`cnnlab.explain`, the models and
:mod:`cnnlab.viz`; the front end is plain HTML, CSS and JavaScript in ``static/`` (nothing is
fetched from the internet).  Needs starlette, uvicorn and python-multipart
(``pip install 'cnnlab[web]'``).
"""

from cnnlab.web._app import Limits, create_app
from cnnlab.web._serve import bind, serve

__all__ = ["Limits", "bind", "create_app", "serve"]
