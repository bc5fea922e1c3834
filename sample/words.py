"""Word lists for the sample ERP data: Spanish names, places and construction vocabulary.

Fixed tuples, never shuffled or sorted at run time, so that a seeded RNG picking from them
gives the same data on every machine.
"""

from __future__ import annotations

NOMBRES = (
    "Antonio", "Manuel", "José", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos",
    "Jesús", "Alejandro", "Miguel", "Rafael", "Pedro", "Pablo", "Ángel", "Sergio", "Fernando",
    "Jorge", "Luis", "Alberto", "Álvaro", "Adrián", "Diego", "Raúl", "Iván", "Rubén", "Óscar",
    "María", "Carmen", "Ana", "Isabel", "Laura", "Cristina", "Marta", "Lucía", "Elena", "Pilar",
    "Sara", "Paula", "Rosa", "Raquel", "Beatriz", "Nuria", "Silvia", "Irene", "Patricia",
)  # fmt: skip

APELLIDOS = (
    "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
    "Gómez", "Martín", "Jiménez", "Hernández", "Ruiz", "Díaz", "Moreno", "Muñoz", "Álvarez",
    "Romero", "Gutiérrez", "Alonso", "Navarro", "Torres", "Domínguez", "Ramos", "Vázquez",
    "Ramírez", "Gil", "Serrano", "Morales", "Molina", "Blanco", "Suárez", "Castro", "Ortega",
    "Delgado", "Ortiz", "Marín", "Rubio", "Núñez", "Medina", "Sanz", "Castillo", "Iglesias",
)  # fmt: skip

# (ciudad, provincia, prefijo postal)
CIUDADES = (
    ("Madrid", "Madrid", "28"), ("Alcalá de Henares", "Madrid", "28"),
    ("Getafe", "Madrid", "28"), ("Barcelona", "Barcelona", "08"),
    ("Sabadell", "Barcelona", "08"), ("Valencia", "Valencia", "46"),
    ("Gandía", "Valencia", "46"), ("Sevilla", "Sevilla", "41"),
    ("Dos Hermanas", "Sevilla", "41"), ("Zaragoza", "Zaragoza", "50"),
    ("Málaga", "Málaga", "29"), ("Marbella", "Málaga", "29"),
    ("Murcia", "Murcia", "30"), ("Cartagena", "Murcia", "30"),
    ("Palma", "Illes Balears", "07"), ("Bilbao", "Bizkaia", "48"),
    ("Valladolid", "Valladolid", "47"), ("Vigo", "Pontevedra", "36"),
    ("Gijón", "Asturias", "33"), ("Oviedo", "Asturias", "33"),
    ("A Coruña", "A Coruña", "15"), ("Granada", "Granada", "18"),
    ("Alicante", "Alicante", "03"), ("Elche", "Alicante", "03"),
    ("Córdoba", "Córdoba", "14"), ("Pamplona", "Navarra", "31"),
    ("Santander", "Cantabria", "39"), ("Toledo", "Toledo", "45"),
)  # fmt: skip

VIAS = ("Calle", "Avenida", "Plaza", "Paseo", "Camino", "Ronda", "Travesía", "Carretera")

NOMBRES_VIA = (
    "Mayor", "Real", "de la Constitución", "del Sol", "de Goya", "de Alcalá", "San Isidro",
    "de la Paz", "de los Olivos", "del Carmen", "de Cervantes", "de Colón", "Nueva",
    "de la Estación", "del Río", "de Andalucía", "de Castilla", "Santa Ana", "del Mar",
    "de la Industria", "de los Almendros", "Doctor Fleming", "Juan Carlos I", "de Valencia",
)  # fmt: skip

FORMAS_JURIDICAS = ("S.L.", "S.A.", "S.L.U.", "S.Coop.", "C.B.")

ACTIVIDADES = (
    "Promociones", "Inversiones", "Inmobiliaria", "Construcciones", "Reformas", "Gestión",
    "Patrimonial", "Desarrollos", "Hoteles", "Residencial", "Logística", "Comercial",
)  # fmt: skip

TIPOS_OBRA = (
    "Edificio de viviendas", "Rehabilitación de fachada", "Nave industrial",
    "Reforma integral de vivienda", "Urbanización", "Centro educativo", "Local comercial",
    "Aparcamiento subterráneo", "Vivienda unifamiliar", "Ampliación de hotel",
    "Polideportivo municipal", "Residencia de mayores", "Oficinas", "Consultorio médico",
)  # fmt: skip

ETIQUETAS = (
    "obra-nueva", "rehabilitacion", "publica", "privada", "urgente", "licencia-pendiente",
    "eficiencia-energetica", "passivhaus", "bim", "subvencion", "llave-en-mano", "fase-2",
)  # fmt: skip

CATEGORIAS_EMPLEADO = (
    "peón", "peón especialista", "oficial de 2ª", "oficial de 1ª", "encargado",
    "jefe de obra", "gruista", "electricista", "fontanero", "administrativo", "topógrafo",
)  # fmt: skip

CERTIFICACIONES = (
    "PRL 20h", "PRL 60h", "trabajos en altura", "carretillero", "gruista", "andamios",
    "espacios confinados", "primeros auxilios", "amianto", "plataformas elevadoras",
)  # fmt: skip

CAPITULOS = (
    "01 Movimiento de tierras", "02 Cimentación", "03 Estructura", "04 Albañilería",
    "05 Cubiertas", "06 Aislamientos", "07 Revestimientos", "08 Carpintería",
    "09 Fontanería", "10 Electricidad", "11 Climatización", "12 Pintura",
    "13 Urbanización", "14 Seguridad y salud", "15 Gestión de residuos",
)  # fmt: skip

UNIDADES = ("m2", "m3", "ml", "ud", "kg", "h", "t", "pa")

MATERIALES = (
    "Hormigón HA-25/B/20/IIa", "Acero corrugado B500S", "Ladrillo perforado 24x11,5x9",
    "Bloque de hormigón 40x20x20", "Mortero M-7,5", "Placa de yeso laminado 13 mm",
    "Panel sándwich 40 mm", "Teja cerámica mixta", "Lámina impermeabilizante EPDM",
    "Lana mineral 80 mm", "Poliestireno extruido 50 mm", "Tubo PVC saneamiento 110 mm",
    "Tubo multicapa 20 mm", "Cable RZ1-K 3x2,5", "Baldosa porcelánica 60x60",
    "Pintura plástica blanca", "Ventana PVC oscilobatiente", "Puerta cortafuegos EI2 60",
    "Zahorra artificial", "Arena lavada 0/4", "Grava 6/12", "Malla electrosoldada 15x15",
)  # fmt: skip

TAREAS = (
    "Replanteo", "Excavación de zanjas", "Encofrado de pilares", "Ferrallado de forjado",
    "Hormigonado de losa", "Levantamiento de tabiquería", "Enfoscado de paramentos",
    "Colocación de solado", "Instalación de bajantes", "Tendido de cableado",
    "Montaje de andamio", "Impermeabilización de cubierta", "Limpieza de obra",
    "Colocación de carpintería", "Pintura de fachada", "Descarga de material",
)  # fmt: skip

OBSERVACIONES = (
    "sin incidencias", "retraso por lluvia", "falta material, se solicita al proveedor",
    "visita de la dirección facultativa", "inspección de seguridad conforme",
    "se repasa junta de dilatación", "pendiente de revisar nivelación",
    "ensayo de hormigón: probetas tomadas", "cambio de orden de trabajos por acceso",
    "grúa parada dos horas por viento", "entrega parcial de ferralla", "trabajo a destajo",
)  # fmt: skip

CLIMA = ("soleado", "nublado", "lluvia", "viento", "helada", "calor extremo")

CATEGORIAS_PROVEEDOR = (
    "áridos", "hormigones", "ferralla", "cerámica", "aislamientos", "carpintería",
    "fontanería", "electricidad", "maquinaria", "alquiler de andamios", "pinturas",
)  # fmt: skip

METODOS_PAGO = ("transferencia", "confirming", "pagaré", "recibo domiciliado", "cheque")

TIPOS_DOCUMENTO = ("plano", "contrato", "licencia", "certificado", "acta de replanteo")

DESCRIPCIONES_FOTO = (
    "estado de la estructura", "detalle de armado", "fachada principal", "cubierta",
    "instalaciones en patinillo", "acopio de material", "vista general", "daño a reparar",
    "prueba de estanqueidad", "replanteo de tabiquería", "solado terminado",
)  # fmt: skip
