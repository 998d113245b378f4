"""SMS gateways: Kannel's `dlr-url`, Jasmin's DLRs, any SMPP gateway filling Kannel's escapes.

They push; dlrhub does not send through them (send through your gateway and give
it the URL printed at start). `callbacks.py` reads the DLRs (its docstring is
docs/providers/smsgateway.md, with every status table), `fake.py` plays a Kannel
or a Jasmin calling dlrhub back; the escapes and receipt words are shared with
360NRS in `dlrhub/normalizers/kannel.py`.
"""

from __future__ import annotations

from dlrhub.normalizers.base import SourceOptions
from dlrhub.providers.base import Provider, Route, SourceSpec
from dlrhub.providers.smsgateway import callbacks
from dlrhub.providers.token import SOURCE_TOKEN

ROUTES = (
    Route(
        "dlr",
        ("GET", "POST"),
        body="form",
        summary="SMS gateway DLR: Kannel dlr-url escapes or Jasmin's fields; answered ACK/Jasmin",
        fields=(*callbacks.DEFAULT_DLR_PARAMS.values(), *callbacks.JASMIN_FIELDS),
        ack=callbacks.JASMIN_ACK,
    ),
)


def _urls(hook: str, token: str, options: SourceOptions) -> list[tuple[str, str]]:
    names = {**callbacks.DEFAULT_DLR_PARAMS, **options.dlr_params}
    escapes = "".join(
        f"&{names[field]}={escape}" for field, escape in callbacks.DLR_ESCAPES.items()
    )
    return [
        (
            "Kannel dlr-url (GET; put your own ref)",
            f"{hook}/dlr?token={token}{escapes}&{names['ref']}=<your-ref>",
        ),
        (
            "Jasmin dlr-url (dlr-level 3, dlr-method GET or POST; put your own ref)",
            f"{hook}/dlr?token={token}&{names['ref']}=<your-ref>",
        ),
    ]


PROVIDER = Provider(
    name="smsgateway",
    title="SMS gateway (Kannel, Jasmin)",
    aliases=("kannel", "jasmin"),
    normalize=callbacks.normalize,
    docs="docs/providers/smsgateway.md",
    status_table="dlrhub/providers/smsgateway/callbacks.py",
    source=SourceSpec(
        routes=ROUTES,
        auth=SOURCE_TOKEN,
        urls=_urls,
        dlr_params=callbacks.DEFAULT_DLR_PARAMS,
    ),
    fake="dlrhub.providers.smsgateway.fake:FakeSmsGateway",
)
