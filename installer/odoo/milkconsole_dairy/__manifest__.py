# The Odoo side of Milk Console's contract: the models the console pushes its records to and
# pulls the herd from. The version carries no series prefix: Odoo adds its own (17.0., 18.0., ...).
{
    "name": "Milk Console dairy models",
    "version": "1.0.0",
    "summary": "Milk meters, milking sessions, production, alerts and herd for Milk Console",
    "description": """
Models of the Milk Console contract for a farm whose Odoo does not have them yet:
iot.device, iot.device.alert, iot.milk_meter, iot.milk_meter.point, milk.session,
farm.animal, farm.animal.rfid, farm.animal.treatment, farm.milk.production,
farm.health.event and farm.pen.
""",
    "author": "Milk Console",
    "category": "Productivity",
    "license": "LGPL-3",
    "depends": ["base"],
    "data": [
        "security/ir.model.access.csv",
        "data/milk_session_sequence.xml",
    ],
    "installable": True,
    "application": True,
}
