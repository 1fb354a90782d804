"""The procedure portal of a mutual-aid scheme (SPEC D1–D3, seed 004): an upstream
application behind the gateway; ``ca-portal`` runs it (README, "Procedure portal")."""
