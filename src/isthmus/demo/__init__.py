"""Demo applications and scenarios modelled on the seed article."""
