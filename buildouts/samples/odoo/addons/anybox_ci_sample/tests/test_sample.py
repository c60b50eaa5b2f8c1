from odoo.tests import TransactionCase, tagged


@tagged("anybox_ci")
class TestSample(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Sample = cls.env["anybox_ci.sample"]

    def test_sale_total(self):
        line = self.Sample.create({"name": "Widget", "quantity": 4, "unit_price": 2.5})
        self.assertEqual(line.total, 10.0)
        line.quantity = 6
        self.assertEqual(line.total, 15.0)

    def test_invoice_rounding(self):
        line = self.Sample.create({"name": "Thirds", "quantity": 3, "unit_price": 3.3333})
        # 9.9999 rounded to the field's 2 digits
        self.assertEqual(line.total, 10.0)

    def test_partner_name(self):
        partner = self.env["res.partner"].create({"name": "Anybox CI"})
        self.assertEqual(partner.display_name, "Anybox CI")
        # the access rights of security/ir.model.access.csv are loaded
        self.assertTrue(self.Sample.with_user(self.env.ref("base.user_admin")).has_access("create"))
