"""The live view for phones: a small web server the console (and the headless gateway) runs on
the farm's own network, so a manager or vet in the yard sees the stalls, today's milk and the
open alerts on any phone, with no app and no internet.

`settings` reads the optional `[web]` config section; `certificate` makes and keeps the
self-signed TLS certificate; `qr` draws the phone's link as a QR code; `live` keeps the stalls
as the pollers report them and hands changes to the server thread; `pages` renders the HTML;
`server` is the HTTP server (the one module that imports aiohttp); `service` puts them together
for `ParlourRuntime.start_web`. Access tokens are kept (hashed) by
`milkconsole.store.web_tokens`. No Qt here.
"""
