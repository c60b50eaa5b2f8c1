from odoo import api, fields, models
from odoo.tools import float_round


class AnyboxCiSample(models.Model):
    _name = "anybox_ci.sample"
    _description = "Anybox CI sample line"
    _order = "name"

    name = fields.Char(required=True)
    quantity = fields.Integer(default=1)
    unit_price = fields.Float(digits=(16, 4))
    total = fields.Float(compute="_compute_total", store=True, digits=(16, 2))

    @api.depends("quantity", "unit_price")
    def _compute_total(self):
        for line in self:
            line.total = float_round(line.quantity * line.unit_price, precision_digits=2)
