{
    "name": "Anybox CI sample",
    "summary": "A small real addon whose tests the CI runs on every PostgreSQL version",
    "version": "18.0.1.0.0",
    "license": "LGPL-3",
    "author": "Anybox",
    "category": "Hidden",
    "depends": ["base"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
    "application": False,
    "auto_install": False,
}
