"""What ``ca_service`` and ``gateway`` both need, and nothing else: settings from the
environment, a TOML file and ``*_FILE`` secrets (:mod:`.settings`), logging set-up and the
one-line error exit (:mod:`.cli`), the worker supervisor and children that end with their
parent (:mod:`.workers`, :mod:`.lifetime`), the gRPC client credential (:mod:`.credentials`),
the Redis peer (:mod:`.redis_peer`) and its availability record (:mod:`.availability`), the
clock (:mod:`.clock`) and Japan time (:mod:`.japan`).

This package imports nothing else of ``ca_service`` (``tests/test_architecture.py`` holds the
line), so that the gateway, which imports only the generated API, the client and this
package, can ship and scale on its own. Its one error is :class:`.errors.ConfigError`; each
package turns it into its own configuration error.
"""
