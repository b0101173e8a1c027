"""The web layer: `Bridge`, an ASGI app between browsers and a bus (docs/guides/web.md).

```python
bridge = ait.web.Bridge(bus, authenticate=user_of, authorize=may)
app.mount("/ait", bridge.app)
```
"""

from __future__ import annotations

from .app import Authenticate as Authenticate
from .app import Authorize as Authorize
from .app import Bridge as Bridge

__all__ = ["Authenticate", "Authorize", "Bridge"]
