"""The station registry as the district's dynamic database: spreadsheets in and out, lifecycle
commands, inspections and history (`stationwatch stations …`)."""
