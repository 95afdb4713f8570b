"""The component catalog the database is seeded from: 58 real-world parts.

Prices are approximate US street prices (USD). Each entry is flat: the common fields
(``id``, ``category``, ``name``, ``brand``, ``price``) plus the attributes that the
compatibility rules in :mod:`pcbuilder.compatibility_rules` read:

========== =================================================================
cpu         ``socket``, ``tdp_w`` (vendor-rated TDP)
motherboard ``socket``, ``ram_type``, ``form_factor``, ``power_w``
ram         ``ram_type``, ``capacity_gb``, ``speed_mts``, ``power_w``
gpu         ``memory_gb``, ``tdp_w`` (total board power)
storage     ``interface``, ``capacity_gb``, ``power_w``
psu         ``wattage``, ``efficiency``
case        ``form_factors`` (motherboard form factors it accepts), ``max_radiator_mm``
            (the longest liquid-cooling radiator it can mount, per its maker)
cooler      ``cooler_type``, ``power_w`` (fans and pump), ``radiator_mm`` (liquid only)
========== =================================================================
"""
from __future__ import annotations

#: Builder order: the order categories appear in forms, tables and "missing" lists.
CATEGORIES = ("cpu", "motherboard", "ram", "gpu", "storage", "psu", "case", "cooler")

#: Fields every component has; anything else in an entry is an attribute.
COMMON_FIELDS = ("id", "category", "name", "brand", "price")

_ALL_FORM_FACTORS = ["ATX", "Micro-ATX", "Mini-ITX"]

COMPONENTS: list[dict] = [
    # --- CPUs -------------------------------------------------------------------
    {"id": 1, "category": "cpu", "name": "Ryzen 5 7600X", "brand": "AMD", "price": 199.99,
     "socket": "AM5", "tdp_w": 105},
    {"id": 2, "category": "cpu", "name": "Ryzen 7 7800X3D", "brand": "AMD", "price": 449.00,
     "socket": "AM5", "tdp_w": 120},
    {"id": 3, "category": "cpu", "name": "Ryzen 9 7950X", "brand": "AMD", "price": 549.99,
     "socket": "AM5", "tdp_w": 170},
    {"id": 4, "category": "cpu", "name": "Ryzen 5 5600X", "brand": "AMD", "price": 129.99,
     "socket": "AM4", "tdp_w": 65},
    {"id": 5, "category": "cpu", "name": "Ryzen 7 5800X3D", "brand": "AMD", "price": 289.00,
     "socket": "AM4", "tdp_w": 105},
    {"id": 6, "category": "cpu", "name": "Core i5-13600K", "brand": "Intel", "price": 289.99,
     "socket": "LGA1700", "tdp_w": 125},
    {"id": 7, "category": "cpu", "name": "Core i7-14700K", "brand": "Intel", "price": 399.99,
     "socket": "LGA1700", "tdp_w": 125},
    {"id": 8, "category": "cpu", "name": "Core i9-14900K", "brand": "Intel", "price": 549.99,
     "socket": "LGA1700", "tdp_w": 125},
    # --- Motherboards -----------------------------------------------------------
    {"id": 9, "category": "motherboard", "name": "ROG Strix B650E-F Gaming WiFi", "brand": "ASUS",
     "price": 249.99, "socket": "AM5", "ram_type": "DDR5", "form_factor": "ATX", "power_w": 60},
    {"id": 10, "category": "motherboard", "name": "MAG B650 Tomahawk WiFi", "brand": "MSI",
     "price": 199.99, "socket": "AM5", "ram_type": "DDR5", "form_factor": "ATX", "power_w": 60},
    {"id": 11, "category": "motherboard", "name": "B650M Aorus Elite AX", "brand": "Gigabyte",
     "price": 179.99, "socket": "AM5", "ram_type": "DDR5", "form_factor": "Micro-ATX",
     "power_w": 50},
    {"id": 12, "category": "motherboard", "name": "B550M Pro4", "brand": "ASRock",
     "price": 99.99, "socket": "AM4", "ram_type": "DDR4", "form_factor": "Micro-ATX",
     "power_w": 45},
    {"id": 13, "category": "motherboard", "name": "MPG B550 Gaming Plus", "brand": "MSI",
     "price": 129.99, "socket": "AM4", "ram_type": "DDR4", "form_factor": "ATX", "power_w": 50},
    {"id": 14, "category": "motherboard", "name": "ROG Strix B760-I Gaming WiFi", "brand": "ASUS",
     "price": 219.99, "socket": "LGA1700", "ram_type": "DDR5", "form_factor": "Mini-ITX",
     "power_w": 45},
    {"id": 15, "category": "motherboard", "name": "PRO Z790-A WiFi", "brand": "MSI",
     "price": 239.99, "socket": "LGA1700", "ram_type": "DDR5", "form_factor": "ATX",
     "power_w": 65},
    {"id": 16, "category": "motherboard", "name": "B760M DS3H DDR4", "brand": "Gigabyte",
     "price": 109.99, "socket": "LGA1700", "ram_type": "DDR4", "form_factor": "Micro-ATX",
     "power_w": 45},
    # --- Memory -------------------------------------------------------------------
    {"id": 17, "category": "ram", "name": "Vengeance 32GB (2x16GB) DDR5-6000 CL30",
     "brand": "Corsair", "price": 104.99, "ram_type": "DDR5", "capacity_gb": 32,
     "speed_mts": 6000, "power_w": 10},
    {"id": 18, "category": "ram", "name": "Trident Z5 RGB 32GB (2x16GB) DDR5-6400 CL32",
     "brand": "G.Skill", "price": 124.99, "ram_type": "DDR5", "capacity_gb": 32,
     "speed_mts": 6400, "power_w": 12},
    {"id": 19, "category": "ram", "name": "Fury Beast 64GB (2x32GB) DDR5-5600 CL36",
     "brand": "Kingston", "price": 179.99, "ram_type": "DDR5", "capacity_gb": 64,
     "speed_mts": 5600, "power_w": 12},
    {"id": 20, "category": "ram", "name": "Vengeance LPX 16GB (2x8GB) DDR4-3200 CL16",
     "brand": "Corsair", "price": 41.99, "ram_type": "DDR4", "capacity_gb": 16,
     "speed_mts": 3200, "power_w": 6},
    {"id": 21, "category": "ram", "name": "Ripjaws V 32GB (2x16GB) DDR4-3600 CL16",
     "brand": "G.Skill", "price": 64.99, "ram_type": "DDR4", "capacity_gb": 32,
     "speed_mts": 3600, "power_w": 8},
    {"id": 22, "category": "ram", "name": "Pro 32GB (2x16GB) DDR4-3200 CL22", "brand": "Crucial",
     "price": 59.99, "ram_type": "DDR4", "capacity_gb": 32, "speed_mts": 3200, "power_w": 7},
    {"id": 23, "category": "ram", "name": "T-Force Delta RGB 32GB (2x16GB) DDR5-6000 CL30",
     "brand": "TeamGroup", "price": 99.99, "ram_type": "DDR5", "capacity_gb": 32,
     "speed_mts": 6000, "power_w": 11},
    # --- Graphics cards -----------------------------------------------------------
    {"id": 24, "category": "gpu", "name": "GeForce RTX 4060 Ventus 2X 8G", "brand": "MSI",
     "price": 299.99, "memory_gb": 8, "tdp_w": 115},
    {"id": 25, "category": "gpu", "name": "Dual GeForce RTX 4060 Ti 8GB", "brand": "ASUS",
     "price": 389.99, "memory_gb": 8, "tdp_w": 160},
    {"id": 26, "category": "gpu", "name": "GeForce RTX 4070 Super Windforce OC 12G",
     "brand": "Gigabyte", "price": 599.99, "memory_gb": 12, "tdp_w": 220},
    {"id": 27, "category": "gpu", "name": "GeForce RTX 4070 Ti Super Ventus 3X 16G",
     "brand": "MSI", "price": 799.99, "memory_gb": 16, "tdp_w": 285},
    {"id": 28, "category": "gpu", "name": "TUF Gaming GeForce RTX 4080 Super 16GB",
     "brand": "ASUS", "price": 1049.99, "memory_gb": 16, "tdp_w": 320},
    {"id": 29, "category": "gpu", "name": "Gaming GeForce RTX 4090 Trinity OC", "brand": "Zotac",
     "price": 1799.99, "memory_gb": 24, "tdp_w": 450},
    {"id": 30, "category": "gpu", "name": "Pulse Radeon RX 7800 XT 16GB", "brand": "Sapphire",
     "price": 499.99, "memory_gb": 16, "tdp_w": 263},
    {"id": 31, "category": "gpu", "name": "Speedster MERC 310 Radeon RX 7900 XTX", "brand": "XFX",
     "price": 929.99, "memory_gb": 24, "tdp_w": 355},
    # --- Storage ------------------------------------------------------------------
    {"id": 32, "category": "storage", "name": "990 Pro 2TB PCIe 4.0 NVMe SSD", "brand": "Samsung",
     "price": 169.99, "interface": "NVMe", "capacity_gb": 2000, "power_w": 7},
    {"id": 33, "category": "storage", "name": "Black SN850X 1TB PCIe 4.0 NVMe SSD",
     "brand": "Western Digital", "price": 89.99, "interface": "NVMe", "capacity_gb": 1000,
     "power_w": 7},
    {"id": 34, "category": "storage", "name": "P3 Plus 2TB PCIe 4.0 NVMe SSD", "brand": "Crucial",
     "price": 109.99, "interface": "NVMe", "capacity_gb": 2000, "power_w": 6},
    {"id": 35, "category": "storage", "name": "NV2 1TB PCIe 4.0 NVMe SSD", "brand": "Kingston",
     "price": 59.99, "interface": "NVMe", "capacity_gb": 1000, "power_w": 5},
    {"id": 36, "category": "storage", "name": "870 EVO 1TB 2.5\" SATA SSD", "brand": "Samsung",
     "price": 89.99, "interface": "SATA", "capacity_gb": 1000, "power_w": 4},
    {"id": 37, "category": "storage", "name": "BarraCuda 4TB 3.5\" HDD (5400 rpm)",
     "brand": "Seagate", "price": 84.99, "interface": "SATA", "capacity_gb": 4000, "power_w": 7},
    {"id": 38, "category": "storage", "name": "T700 2TB PCIe 5.0 NVMe SSD", "brand": "Crucial",
     "price": 249.99, "interface": "NVMe", "capacity_gb": 2000, "power_w": 12},
    # --- Power supplies -----------------------------------------------------------
    {"id": 39, "category": "psu", "name": "RM650e 650W 80+ Gold", "brand": "Corsair",
     "price": 89.99, "wattage": 650, "efficiency": "80+ Gold"},
    {"id": 40, "category": "psu", "name": "RM850x 850W 80+ Gold", "brand": "Corsair",
     "price": 139.99, "wattage": 850, "efficiency": "80+ Gold"},
    {"id": 41, "category": "psu", "name": "Focus GX-750 750W 80+ Gold", "brand": "Seasonic",
     "price": 119.99, "wattage": 750, "efficiency": "80+ Gold"},
    {"id": 42, "category": "psu", "name": "Straight Power 12 1000W 80+ Platinum",
     "brand": "be quiet!", "price": 219.99, "wattage": 1000, "efficiency": "80+ Platinum"},
    {"id": 43, "category": "psu", "name": "Toughpower GF3 1200W 80+ Gold", "brand": "Thermaltake",
     "price": 229.99, "wattage": 1200, "efficiency": "80+ Gold"},
    {"id": 44, "category": "psu", "name": "MWE Gold 550 V2 550W 80+ Gold", "brand": "Cooler Master",
     "price": 69.99, "wattage": 550, "efficiency": "80+ Gold"},
    {"id": 45, "category": "psu", "name": "MAG A750GL PCIE5 750W 80+ Gold", "brand": "MSI",
     "price": 99.99, "wattage": 750, "efficiency": "80+ Gold"},
    # --- Cases --------------------------------------------------------------------
    {"id": 46, "category": "case", "name": "North ATX Mid Tower", "brand": "Fractal Design",
     "price": 139.99, "form_factors": list(_ALL_FORM_FACTORS), "max_radiator_mm": 360},
    {"id": 47, "category": "case", "name": "Lancool 216 ATX Mid Tower", "brand": "Lian Li",
     "price": 99.99, "form_factors": list(_ALL_FORM_FACTORS), "max_radiator_mm": 360},
    {"id": 48, "category": "case", "name": "H5 Flow ATX Mid Tower", "brand": "NZXT",
     "price": 94.99, "form_factors": list(_ALL_FORM_FACTORS), "max_radiator_mm": 280},
    {"id": 49, "category": "case", "name": "4000D Airflow ATX Mid Tower", "brand": "Corsair",
     "price": 104.99, "form_factors": list(_ALL_FORM_FACTORS), "max_radiator_mm": 360},
    {"id": 50, "category": "case", "name": "MasterBox NR200P Mini-ITX", "brand": "Cooler Master",
     "price": 99.99, "form_factors": ["Mini-ITX"], "max_radiator_mm": 280},
    {"id": 51, "category": "case", "name": "Pop Mini Air Micro-ATX", "brand": "Fractal Design",
     "price": 89.99, "form_factors": ["Micro-ATX", "Mini-ITX"], "max_radiator_mm": 280},
    {"id": 52, "category": "case", "name": "A4-H2O Mini-ITX", "brand": "Lian Li",
     "price": 149.99, "form_factors": ["Mini-ITX"], "max_radiator_mm": 240},
    # --- CPU coolers --------------------------------------------------------------
    {"id": 53, "category": "cooler", "name": "NH-D15", "brand": "Noctua", "price": 109.95,
     "cooler_type": "Air", "power_w": 4},
    {"id": 54, "category": "cooler", "name": "Dark Rock Pro 5", "brand": "be quiet!",
     "price": 99.90, "cooler_type": "Air", "power_w": 4},
    {"id": 55, "category": "cooler", "name": "Peerless Assassin 120 SE", "brand": "Thermalright",
     "price": 35.90, "cooler_type": "Air", "power_w": 4},
    {"id": 56, "category": "cooler", "name": "Hyper 212 Black Edition", "brand": "Cooler Master",
     "price": 29.99, "cooler_type": "Air", "power_w": 3},
    {"id": 57, "category": "cooler", "name": "Liquid Freezer III 360", "brand": "Arctic",
     "price": 99.99, "cooler_type": "Liquid", "radiator_mm": 360, "power_w": 12},
    {"id": 58, "category": "cooler", "name": "Kraken Elite 360", "brand": "NZXT",
     "price": 279.99, "cooler_type": "Liquid", "radiator_mm": 360, "power_w": 15},
]


def attributes_of(component: dict) -> dict:
    """The category-specific part of a component (everything but the common fields)."""
    return {k: v for k, v in component.items() if k not in COMMON_FIELDS}
