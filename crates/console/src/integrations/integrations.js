// integrations
