from setuptools import setup

setup(
    name="anybox-ci-fake-odoo",
    version="1.0",
    packages=["fake_odoo"],
    entry_points={"console_scripts": ["test_openerp = fake_odoo:main"]},
)
