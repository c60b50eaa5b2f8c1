{
    "name": "Anybox CI sample (failing)",
    "summary": "The Anybox CI sample addon, with exactly one failing test: test_invoice_rounding",
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
