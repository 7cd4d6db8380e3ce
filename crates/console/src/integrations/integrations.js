// integrations: nothing needs script on these pages (plain forms and links).
