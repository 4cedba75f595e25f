"""Wire codecs shared by plugins (tnetstring for ZeroMQ inputs, ZHTTP and stats)."""
