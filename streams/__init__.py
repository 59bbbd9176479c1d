"""The Faust app: agents, tables, timers and web views. Decisions live in plain modules here
(no Faust import) so table-driven tests cover them in milliseconds."""
