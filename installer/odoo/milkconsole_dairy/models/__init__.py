# Importing a model file registers its model; Odoo resolves the relations between them once the
# whole module is loaded, so the order does not matter.
from . import (
    farm_animal,
    farm_animal_rfid,
    farm_animal_treatment,
    farm_health_event,
    farm_milk_production,
    farm_pen,
    iot_device,
    iot_device_alert,
    iot_milk_meter,
    iot_milk_meter_point,
    milk_session,
)
